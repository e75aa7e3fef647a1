"""Opens every NWB file given on the command line with pynwb and validates it against the NWB
schema; exits non-zero, naming the file, on any warning or validation error."""
import sys
import warnings

from pynwb import NWBHDF5IO
from pynwb.validation import validate

bad = 0
for path in sys.argv[1:]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with NWBHDF5IO(path, "r") as io:
            nwb = io.read()
            units = len(nwb.units)
            trials = len(nwb.trials)
        errors = validate(path=path)
    errors = errors[0] if isinstance(errors, tuple) else errors
    problems = [str(w.message) for w in caught] + [str(e) for e in errors]
    print(f"{path}: {units} units, {trials} trials, {len(problems)} problems")
    for p in problems:
        print(f"  {p}")
    bad += bool(problems)
sys.exit(1 if bad else 0)
