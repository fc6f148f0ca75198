"""How a pipeline step talks to the mlplane orchestrator: inputs from a JSON file, outputs as files."""
import json
import os


def inputs():
    """Input name -> value; artifacts are dicts with a local `path` (and key, uri, sha256, size)."""
    with open(os.environ["MLPLANE_INPUTS"], encoding="utf-8") as f:
        return json.load(f)


def output_path(name):
    """Where to write artifact output `name`: the orchestrator stores the file after the step succeeds."""
    return os.path.join(os.environ["MLPLANE_OUTPUTS"], name)


def write_value(name, value):
    """Writes value output `name` as JSON; the orchestrator checks it against the step's zod schema."""
    with open(output_path(name), "w", encoding="utf-8") as f:
        json.dump(value, f)
