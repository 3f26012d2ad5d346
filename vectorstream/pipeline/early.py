"""What a run starts as soon as its plan is known, before the launcher's heavy imports
(Beam's RunInference imports torch): the model's loading, in a thread."""
from __future__ import annotations

from vectorstream.pipeline.plan import RunPlan


def start_model_loading(plan: RunPlan) -> None:
    """Starts loading the run's model in a thread when the pipeline's Python runs in this
    process (transforms.model.preload), so that it loads while the launcher imports the
    graph (Beam's RunInference imports torch), checks Kafka and the store and builds the
    pipeline. Called as soon as the plan is known; a second call does nothing."""
    from vectorstream import telemetry
    telemetry.mark("plan resolved")
    if plan.workers_elsewhere:
        return
    from vectorstream.transforms.model import choose_model, preload
    vs = plan.vs
    preload(choose_model(vs.model).path, vs.device, vs.inference_batch_size)
