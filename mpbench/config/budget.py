"""A device profile's time budget: the whole `mpbench run` of a suite on the machine it meets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BudgetConfig(BaseModel):
    """Hold a suite to `seconds` by measurement: every recipe's step time is calibrated before
    the first run, and every run's measured steps are scaled down alike to fit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: float = Field(gt=0, description="wall time for the whole run command: calibration, "
                                               "every run with its profilers and eval, the report")
    min_steps: int = Field(5, gt=0, description="fewest measured steps; below it the run stops "
                                                 "before training and says the budget cannot be met")
    calibration_steps: int = Field(2, gt=0, le=20,
                                   description="measured steps of each recipe's calibration run")
