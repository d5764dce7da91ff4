package orchestrator.legacy

deny[msg] {
	contains(input.proposal.content, "TODO")
	msg := "proposal leaves a TODO"
}
