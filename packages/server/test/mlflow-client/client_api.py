"""The stock MLflow client API (MlflowClient) against mlplane's MLflow-compatible server.

Run with MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN set; prints one JSON line of what it saw, prefixed
`RESULT `, for the TypeScript test to check against mlplane's ports. Nothing here knows it is not talking to MLflow.
"""

import json

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

client = MlflowClient()
out = {}


def error_code(fn):
    try:
        fn()
    except MlflowException as e:
        return e.error_code
    return None


# Experiments
exp_id = client.create_experiment("client-api", tags={"team": "vision"})
exp = client.get_experiment(exp_id)
out["experiment"] = {
    "id": exp_id,
    "name": exp.name,
    "artifact_location": exp.artifact_location,
    "tags": exp.tags,
}
out["experiment_by_name"] = client.get_experiment_by_name("client-api").experiment_id
out["missing_experiment_by_name"] = client.get_experiment_by_name("no-such-experiment") is None
out["duplicate_experiment"] = error_code(lambda: client.create_experiment("client-api"))
out["missing_experiment"] = error_code(lambda: client.get_experiment("999999"))

# Experiment search with filters and paging, rename, delete, restore
for suffix in ("a", "b", "c"):
    client.create_experiment(f"paged-{suffix}")
page_a = client.search_experiments(filter_string="name LIKE 'paged-%'", order_by=["name ASC"], max_results=2)
page_b = client.search_experiments(
    filter_string="name LIKE 'paged-%'", order_by=["name ASC"], max_results=2, page_token=page_a.token
)
out["experiment_pages"] = [[e.name for e in page_a], [e.name for e in page_b], page_b.token]
paged_c = client.get_experiment_by_name("paged-c").experiment_id
client.rename_experiment(paged_c, "paged-renamed")
client.delete_experiment(paged_c)
deleted = client.get_experiment(paged_c)
client.restore_experiment(paged_c)
out["experiment_lifecycle"] = [deleted.name, deleted.lifecycle_stage, client.get_experiment(paged_c).lifecycle_stage]

# Runs: four runs of a grid, logged in batches
run_ids = []
for i, lr in enumerate(["0.1", "0.01", "0.01", "0.001"]):
    run = client.create_run(exp_id, run_name=f"grid-{i}", tags={"i": str(i)})
    client.log_batch(
        run.info.run_id,
        metrics=[Metric("acc", 0.5 + i / 10, 1_000 + i, 0), Metric("acc", 0.6 + i / 10, 2_000 + i, 1)],
        params=[Param("lr", lr), Param("epochs", "3")],
        tags=[RunTag("kind", "grid")],
    )
    client.set_terminated(run.info.run_id)
    run_ids.append(run.info.run_id)
out["run_ids"] = run_ids

first = client.get_run(run_ids[0])
out["run"] = {
    "name": first.info.run_name,
    "status": first.info.status,
    "artifact_uri": first.info.artifact_uri,
    "params": first.data.params,
    "metrics": first.data.metrics,
    "tags": {k: v for k, v in first.data.tags.items() if k in ("i", "kind", "mlflow.runName")},
    "end_time_set": first.info.end_time is not None,
}

client.log_metric(run_ids[0], "loss", 0.9, step=0)
client.log_metric(run_ids[0], "loss", 0.4, step=1)
client.log_metric(run_ids[0], "loss", float("nan"), step=2)
history = client.get_metric_history(run_ids[0], "loss")
out["loss_history"] = [[m.step, None if m.value != m.value else m.value] for m in history]
client.log_param(run_ids[0], "seed", "7")
out["param_changed"] = error_code(lambda: client.log_param(run_ids[0], "seed", "8"))
client.set_tag(run_ids[0], "note", "first")
client.delete_tag(run_ids[0], "note")
out["note_deleted"] = "note" not in client.get_run(run_ids[0]).data.tags

# Search with MLflow's filter syntax, order and paging
flt = "params.lr = '0.01' and metrics.acc > 0.5"
page1 = client.search_runs([exp_id], flt, order_by=["metrics.acc DESC"], max_results=1)
page2 = client.search_runs([exp_id], flt, order_by=["metrics.acc DESC"], max_results=1, page_token=page1.token)
out["search"] = {
    "page1": [r.info.run_id for r in page1],
    "page1_has_token": page1.token is not None,
    "page2": [r.info.run_id for r in page2],
    "page2_token": page2.token,
}
out["search_attr"] = sorted(r.info.run_name for r in client.search_runs([exp_id], "attributes.status = 'FINISHED'"))
out["search_tag"] = len(client.search_runs([exp_id], "tags.kind = 'grid'"))

client.delete_run(run_ids[3])
out["after_delete"] = len(client.search_runs([exp_id]))
client.restore_run(run_ids[3])
out["after_restore"] = len(client.search_runs([exp_id]))

# Registry: models, versions, aliases, stages
name = "client-model"
client.create_registered_model(name, tags={"team": "risk"}, description="grid winner")
out["duplicate_model"] = error_code(lambda: client.create_registered_model(name))
source = f"{first.info.artifact_uri}/model"
mv1 = client.create_model_version(name, source, run_id=run_ids[0], tags={"v": "1"})
mv2 = client.create_model_version(name, source, run_id=run_ids[1])
client.set_registered_model_alias(name, "champion", mv2.version)
by_alias = client.get_model_version_by_alias(name, "champion")
client.transition_model_version_stage(name, mv1.version, "Staging")
client.transition_model_version_stage(name, mv2.version, "Staging", archive_existing_versions=True)
staged = client.get_latest_versions(name, stages=["Staging"])
client.set_model_version_tag(name, mv2.version, "reviewed", "yes")
client.update_model_version(name, mv2.version, description="the better one")
mv2_read = client.get_model_version(name, mv2.version)
versions = client.search_model_versions(f"name = '{name}'")
model = client.get_registered_model(name)
out["registry"] = {
    "versions": [mv1.version, mv2.version],
    "source": mv1.source,
    "alias_version": by_alias.version,
    "alias_aliases": list(by_alias.aliases),
    "v1_stage": client.get_model_version(name, mv1.version).current_stage,
    "staged": [v.version for v in staged],
    "v2": {"tags": mv2_read.tags, "description": mv2_read.description, "stage": mv2_read.current_stage},
    "searched": sorted(v.version for v in versions),
    "model_aliases": dict(model.aliases),
    "model_tags": {k: v for k, v in model.tags.items() if k == "team"},
    "download_uri": client.get_model_version_download_uri(name, mv1.version),
    "missing_model": error_code(lambda: client.get_registered_model("no-such-model")),
}
client.update_registered_model(name, description="still the winner")
client.delete_model_version(name, mv1.version)
out["version_deleted"] = error_code(lambda: client.get_model_version(name, mv1.version))
out["model_description"] = client.get_registered_model(name).description
client.delete_registered_model_alias(name, "champion")
out["alias_deleted"] = error_code(lambda: client.get_model_version_by_alias(name, "champion"))
client.rename_registered_model(name, "client-model-renamed")
out["renamed"] = [m.name for m in client.search_registered_models("name LIKE 'client-model%'")]

print("RESULT " + json.dumps(out))
