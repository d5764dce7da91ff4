package orchestrator.images

import rego.v1

# Containers must pin an image version.
deny contains msg if {
	some artifact in input.artifacts
	artifact.language == "yaml"
	contains(artifact.content, ":latest")
	msg := sprintf("%s pins an image to :latest", [artifact.label])
}
