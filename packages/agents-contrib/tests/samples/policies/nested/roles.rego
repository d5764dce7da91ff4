package orchestrator.roles

import rego.v1

# DEVOPS proposals must be manifests, with a rule id and a location of their own.
deny contains {"id": "ROLE001", "msg": "a DEVOPS proposal must contain a YAML manifest"} if {
	input.task.role == "DEVOPS"
	count([a | some a in input.artifacts; a.language == "yaml"]) == 0
}

deny contains {"id": "ROLE002", "msg": "print() left in production code", "artifact": a.index, "line": 1} if {
	some a in input.artifacts
	a.language == "python"
	startswith(a.content, "print(")
}
