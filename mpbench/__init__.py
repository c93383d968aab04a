"""mpbench: measure what each training precision buys on the machine at hand."""

__version__ = "0.1.0"
