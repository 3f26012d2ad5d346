"""`vectorstream bench`: one workload through our pipeline and through stock Beam, side by side.

Both pipelines get the same events, model, device and machine, one after the other in
the same run, each in its own process (so peak RSS is its own):

- ours: `pipeline.graph.build` as shipped, from the plan of the flags `vectorstream run`
  takes (`ours.py`);
- stock: what a Beam user writes with Beam's own pieces: json.loads, RunInference with a
  plain ModelHandler around `SentenceTransformer.encode`, EmbeddableItem, and Beam's
  `QdrantWriteConfig` sink (qdrant-client; here its local mode on disk, the only
  in-process store it can write to) (`stock.py`).

Events come from the real broker (`--source kafka`, the default here), or from
pre-encoded messages fed through the same parsing code (`--source memory`: machines with
no Kafka, such as the GPU host) (`workloads.py`, `source.py`). Both read with our Kafka
source; ours takes its batches, stock one record an element, as Beam's ReadFromKafka
gives them. Either way the reader's output is stamped with the time it was read, so
latency = read → stored, the same measure for both pipelines, and events/s = events
stored / (last stored − first read), without start-up (model load).

The rooms: `options` (the command's flags; no Beam), `main` (the parent: the workload, one
child process a pipeline, the report), `child` (one pipeline run and what it measures),
`measure` (CPU, memory and GPU samplers), `stores` (where each pipeline writes, and
reading the result back), `report` and `charts`.
"""
