"""A device profile's time budget: the whole `mpbench run` of a suite on the machine it meets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BudgetConfig(BaseModel):
    """Hold a suite to `seconds` by measurement: every recipe's step time is calibrated before
    the first run, and every run's measured steps are scaled down alike to fit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: float = Field(gt=0, description="wall time for the whole run command: calibration, "
                                               "every run with its profilers and eval, the report")
    min_steps: int = Field(5, gt=0, description="fewest measured steps; when even these do not "
                                                 "fit, the budget cannot be met and it says so")
    strict: bool = Field(False, description="a budget that cannot be met stops the run before "
                                            "training (exit 2); false: it runs at min_steps")
    calibration_steps: int = Field(3, gt=0, le=20,
                                   description="measured steps of each recipe's calibration run, "
                                               "after the run's own warm-up; their median is "
                                               "the recipe's step time")
