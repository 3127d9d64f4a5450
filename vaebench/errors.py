"""One exception family, so the CLI can turn every user error into a clear message and exit code."""


class VaebenchError(Exception):
    """Base of every error vaebench raises on purpose. The message is meant for the user."""

    exit_code = 1


class SpecError(VaebenchError):
    """A sweep spec is malformed: the message names the file and the field."""

    exit_code = 2


class DataError(VaebenchError):
    """A dataset cannot be loaded: the message names the files and folder expected."""

    exit_code = 2


class StudyError(VaebenchError):
    """A study cannot be created or resumed as asked (for example: its spec changed)."""

    exit_code = 2


class RegistryError(VaebenchError, KeyError):
    """An unknown name was looked up in a registry."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DeviceError(VaebenchError):
    """The device (or a precision on it) asked for is not usable on this machine: `--device cuda`
    without CUDA, a GPU index out of range, bf16 on a GPU without it."""

    exit_code = 2


class Preempted(VaebenchError):
    """The process was asked to stop (SIGTERM: a Slurm preemption or time limit, a Kubernetes pod
    deletion, `kill`): the running run wrote a checkpoint and its trial was handed back to the
    study for another worker; the command exits with `PREEMPTED_EXIT_CODE`."""

    exit_code = 3


PREEMPTED_EXIT_CODE = Preempted.exit_code

# Ctrl-C (SIGINT) in `vaebench run` or `vaebench worker`: the finished rows are kept and the command
# says how to resume; 128 + SIGINT (2), the code a shell gives a process that SIGINT ended
INTERRUPTED_EXIT_CODE = 130


class TrackingError(VaebenchError):
    """A tracker the spec's `tracking:` section (or `--track`) names cannot be used here: its package
    is not installed (the message gives the pip command for vaebench's extra), or the URI is bad.
    Raised before anything is written. A tracker failing while runs train is no error: the run's row
    records it (`tracking_error`)."""

    exit_code = 2
