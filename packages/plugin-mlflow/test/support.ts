/** The MLflow peer's URL; integration tests need `scripts/peers up mlflow` and `eval "$(scripts/peers env)"`. */
export function mlflowUrl(): string {
  const value = process.env.MLPLANE_MLFLOW_URL;
  if (!value)
    throw new Error('MLPLANE_MLFLOW_URL is not set: run scripts/peers up mlflow, then eval "$(scripts/peers env)"');
  return value;
}
