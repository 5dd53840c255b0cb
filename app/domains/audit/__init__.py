"""/v1/audit and /v1/decisions: the audit trail and recorded decisions, for admin keys."""
