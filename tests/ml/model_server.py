"""A real KServe model server (PyPI `kserve`, its `Model` API) serving scikit-learn models
trained on generated data, for the inference backend tests. Runs in .deps/ml-venv (kserve,
scikit-learn), not in the MCP client venv.

  python model_server.py train --out DIR [--seed N]     train, write DIR/*.joblib
  python model_server.py train-rows --rows F --out DIR  IsolationForest on the feature rows in
                                                        F (JSON [[x, ...], ...]), written as
                                                        DIR/anomaly-detector.joblib
  python model_server.py serve --dir DIR --port P       serve DIR/*.joblib on 127.0.0.1:P
                                                        (v1 + v2 REST), named by file

Models of `train` (features are [cpu_cores, memory_gib] per row):
- `anomaly-detector`: IsolationForest trained on normal load around (0.5 cores, 1.0 GiB);
  v1 answers `{"predictions": [1 | -1, ...]}` (-1 = anomaly, as the original's model);
  v2 answers outputs `anomalies` (INT64, [n]) and `scores` (FP64, [n], lower = more anomalous).
- `predictive-analytics`: a linear regressor of [cpu_cores, memory_gib] at a target hour from
  [cpu_cores, memory_gib, target hour, target day of week]; trained on y = (1.1 cpu + 0.01
  hour, 1.05 mem) (the day of week plays no part);
  v1 answers `{"predictions": [[cpu, mem], ...]}`, v2 output `predictions` (FP64, [n, 2]).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import joblib
import numpy as np


def train(out: Path, seed: int) -> None:
    from sklearn.ensemble import IsolationForest
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(seed)
    normal = np.column_stack([rng.normal(0.5, 0.05, 2000), rng.normal(1.0, 0.08, 2000)])
    iso = IsolationForest(n_estimators=100, contamination=0.01, random_state=seed).fit(normal)

    x = np.column_stack([rng.uniform(0.1, 2.0, 1000), rng.uniform(0.2, 4.0, 1000), rng.integers(0, 24, 1000), rng.integers(0, 7, 1000)])
    y = np.column_stack([1.1 * x[:, 0] + 0.01 * x[:, 2], 1.05 * x[:, 1]]) + rng.normal(0, 0.001, (1000, 2))
    reg = LinearRegression().fit(x, y)

    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(iso, out / "anomaly-detector.joblib")
    joblib.dump(reg, out / "predictive-analytics.joblib")


def train_rows(rows_file: Path, out: Path, seed: int, contamination: float) -> None:
    """The anomaly detector of the 45-feature test: an IsolationForest fitted on feature rows
    (analyze-anomalies' own, include_features=true), unlabelled as production data are; the
    share `contamination` of them sets its threshold."""
    import json

    from sklearn.ensemble import IsolationForest

    x = np.asarray(json.loads(rows_file.read_text()), dtype=np.float64)
    iso = IsolationForest(n_estimators=300, max_samples=len(x), contamination=contamination, random_state=seed).fit(x)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(iso, out / "anomaly-detector.joblib")


def serve(models_dir: Path, port: int) -> None:
    import kserve
    import kserve.protocol.rest.server as rest
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    # KServe binds 0.0.0.0; tests listen on loopback only.
    base_config = rest.uvicorn.Config

    class LoopbackConfig(base_config):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **kw):
            kw["host"] = "127.0.0.1"
            super().__init__(*a, **kw)

    rest.uvicorn.Config = LoopbackConfig

    class SkModel(kserve.Model):
        def __init__(self, name: str, path: Path):
            super().__init__(name)
            self.path = path
            self.est = None

        def load(self) -> bool:
            self.est = joblib.load(self.path)
            self.ready = True
            return self.ready

        def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
            if self.name == "anomaly-detector":
                return {
                    "anomalies": self.est.predict(x).astype(np.int64),
                    "scores": self.est.decision_function(x).astype(np.float64),
                }
            return {"predictions": self.est.predict(x).astype(np.float64)}

        async def predict(self, payload, headers=None, response_headers=None):
            if isinstance(payload, InferRequest):
                x = payload.inputs[0].as_numpy().astype(np.float64)
                outs = []
                for name, arr in self.outputs(x).items():
                    dt = "INT64" if arr.dtype == np.int64 else "FP64"
                    o = InferOutput(name=name, shape=list(arr.shape), datatype=dt)
                    o.set_data_from_numpy(arr, binary_data=False)
                    outs.append(o)
                return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=outs)
            x = np.asarray(payload["instances"], dtype=np.float64)
            first = next(iter(self.outputs(x).values()))
            return {"predictions": first.tolist()}

    models = []
    for path in sorted(models_dir.glob("*.joblib")):
        m = SkModel(path.stem, path)
        m.load()
        models.append(m)
    kserve.ModelServer(http_port=port, enable_grpc=False, workers=1).start(models)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--seed", type=int, default=7)
    r = sub.add_parser("train-rows")
    r.add_argument("--rows", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--seed", type=int, default=7)
    r.add_argument("--contamination", type=float, default=0.005)
    s = sub.add_parser("serve")
    s.add_argument("--dir", type=Path, required=True)
    s.add_argument("--port", type=int, required=True)
    a, rest_args = p.parse_known_args()
    # kserve parses sys.argv at import: hand it only what it understands.
    sys.argv = [sys.argv[0], *rest_args]
    if a.cmd == "train":
        train(a.out, a.seed)
    elif a.cmd == "train-rows":
        train_rows(a.rows, a.out, a.seed, a.contamination)
    else:
        serve(a.dir, a.port)


if __name__ == "__main__":
    main()
