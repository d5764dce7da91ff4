package orchestrator.broken

import rego.v1

deny contains msg if {
	msg :=
}
