"""The stock MLflow fluent API against mlplane's MLflow-compatible server: set_experiment, start_run, log_params,
log_metrics, log_artifact(s) through the mlflow-artifacts proxy, register_model, an alias, and loading the model back
by its alias URI. Prints one JSON line prefixed `RESULT `.
"""

import json
import os
import tempfile

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input * 2


out = {}
tmp = tempfile.mkdtemp()
experiment = mlflow.set_experiment("fluent-api")
out["experiment_id"] = experiment.experiment_id

with mlflow.start_run(run_name="train") as run:
    mlflow.log_params({"lr": 0.01, "epochs": 3})
    mlflow.log_metrics({"acc": 0.9, "loss": 0.1}, step=1)
    mlflow.log_metric("acc", 0.95, step=2)
    mlflow.set_tag("stage", "dev")
    notes = os.path.join(tmp, "notes.txt")
    with open(notes, "w") as f:
        f.write("hello from the stock client")
    mlflow.log_artifact(notes)
    plots = os.path.join(tmp, "plots")
    os.makedirs(os.path.join(plots, "nested"))
    with open(os.path.join(plots, "a.csv"), "w") as f:
        f.write("x,y\n1,2\n")
    with open(os.path.join(plots, "nested", "b.txt"), "w") as f:
        f.write("b")
    mlflow.log_artifacts(plots, artifact_path="plots")
    # A pyfunc model saved locally and logged as files: MLflow 3's log_model needs its logged-models API.
    model_dir = os.path.join(tmp, "model")
    mlflow.pyfunc.save_model(model_dir, python_model=Doubler(), pip_requirements=["pandas"])
    mlflow.log_artifacts(model_dir, artifact_path="model")
run_id = run.info.run_id
out["run_id"] = run_id

client = MlflowClient()
finished = client.get_run(run_id)
out["run"] = {
    "status": finished.info.status,
    "experiment_id": finished.info.experiment_id,
    "params": finished.data.params,
    "metrics": finished.data.metrics,
    "stage_tag": finished.data.tags.get("stage"),
    "artifact_uri": finished.info.artifact_uri,
}
out["acc_history"] = [[m.step, m.value] for m in client.get_metric_history(run_id, "acc")]
out["artifacts"] = sorted(a.path for a in client.list_artifacts(run_id))
out["plots"] = sorted(a.path for a in client.list_artifacts(run_id, "plots"))
downloads = os.path.join(tmp, "downloads")
os.makedirs(downloads)
with open(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="notes.txt", dst_path=downloads)) as f:
    out["notes"] = f.read()

mv = mlflow.register_model(f"runs:/{run_id}/model", "fluent-model")
out["version"] = mv.version
out["version_source"] = mv.source
client.set_registered_model_alias("fluent-model", "champion", mv.version)
os.makedirs(os.path.join(tmp, "loaded"))
model = mlflow.pyfunc.load_model("models:/fluent-model@champion", dst_path=os.path.join(tmp, "loaded"))
out["prediction"] = model.predict(pd.DataFrame({"x": [1, 2, 3]}))["x"].tolist()

# Nested runs, a dataset input, and the pandas search over the active experiment.
with mlflow.start_run(run_name="sweep") as parent:
    with mlflow.start_run(run_name="trial", nested=True) as child:
        mlflow.log_param("lr", 0.01)
        mlflow.log_metric("acc", 0.5)
    dataset = mlflow.data.from_pandas(pd.DataFrame({"a": [1, 2, 3]}), name="tiny")
    mlflow.log_input(dataset, context="training")
out["child_parent"] = client.get_run(child.info.run_id).data.tags.get("mlflow.parentRunId")
out["parent_id"] = parent.info.run_id
out["inputs"] = [
    [d.dataset.name, d.dataset.digest == dataset.digest, {t.key: t.value for t in d.tags}]
    for d in client.get_run(parent.info.run_id).inputs.dataset_inputs
]
frame = mlflow.search_runs(filter_string="params.lr = '0.01'", order_by=["attributes.start_time ASC"])
out["search_frame"] = frame["run_id"].tolist()
out["search_frame_acc"] = frame["metrics.acc"].tolist()

# No experiment set: the client logs to experiment 0, the project's default experiment.
with mlflow.start_run(experiment_id="0") as default_run:
    mlflow.log_param("where", "default")
out["default_run_experiment"] = client.get_run(default_run.info.run_id).info.experiment_id
out["default_experiment_name"] = client.get_experiment("0").name

print("RESULT " + json.dumps(out))
