"""SOPs: versions and their lifecycle, approvals (SopApprovalWorkflow), rollouts to orgs
(SopRolloutWorkflow), parity across orgs and the periodic review."""
