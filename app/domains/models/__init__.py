"""GET /v1/models: the models, their thresholds and the calibration in use."""
