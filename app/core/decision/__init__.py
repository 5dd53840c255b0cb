"""The one home of every match decision: tau, calibration in use, score normalisation,
model checks and the 1:N accept rule, used by the service, the jobs and the CLI alike."""
