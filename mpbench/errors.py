"""The user-error types. The CLI turns a UserError into a one-line message and exit code 2."""


class UserError(Exception):
    """A mistake the user can fix (bad suite, missing file, corrupt results).

    The message names what is wrong and how to fix it; it is printed without a traceback.
    """

    exit_code = 2




class ModelEntryError(Exception):
    """A suite's model entry that cannot be built; `field` is the key of the entry to blame
    (the suite loader turns it into a UserError with the dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
