"""/v1/models, /v1/models/{name}/calibration, /v1/models/{name}/layers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from app.api import errors
from app.api.deps import VerifyKey, from_state
from app.core.store.repos.keys import Scope
from app.domains.models.schemas import CalibrationCurveOut, LayersOut, ModelsOut
from app.domains.models.service import ModelsService, layers_of_model

# The tag and the paths are those these routes had under recognition: clients and the
# OpenAPI document see no move.
router = APIRouter(prefix="/v1", tags=["recognition"])

Models = Annotated[ModelsService, Depends(from_state("models"))]


@router.get(
    "/models",
    response_model=ModelsOut,
    summary="The active model, its thresholds and calibration",
    responses=errors.responses(),
)
async def list_models(principal: VerifyKey, service: Models) -> ModelsOut:
    return await service.describe(may_read=principal.allows(Scope.read))


@router.get(
    "/models/{name}/calibration",
    response_model=CalibrationCurveOut,
    summary="The ROC and FPIR curves of the active model's calibration, for a plot",
    description="The stored `facesvc calibrate` run in use (or the built-in calibration): "
    "FAR and TAR over tau with the active 1:1 tau, and FPIR over tau at the gallery size "
    "the active 1:N tau is for. 404 for a model other than the active one.",
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND),
)
async def get_model_calibration(
    name: Annotated[str, Path(max_length=100)], _: VerifyKey, service: Models
) -> CalibrationCurveOut:
    return await service.calibration_curve(name)


@router.get(
    "/models/{name}/layers",
    response_model=LayersOut,
    summary="The embedding network's layers and their receptive fields",
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND),
)
async def get_model_layers(name: Annotated[str, Path(max_length=100)], _: VerifyKey) -> LayersOut:
    return layers_of_model(name)
