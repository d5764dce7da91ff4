package orchestrator.roles_test

this is an OPA unit test file and is not loaded
