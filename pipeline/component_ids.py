"""The id of every node of the pipeline: named here once, used by the pipeline, the Kubeflow
compiler, the command line and the reports (no TFX import: reading ids costs nothing)."""

EXAMPLE_GEN = "CifarExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
PIN_SCHEMA = "PinSchema"
EXAMPLE_VALIDATOR = "ExampleValidator"
ANOMALY_GATE = "AnomalyGate"
TRANSFORM = "Transform"
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"
LAST_BLESSED_MODEL = "last_blessed_model"  # the Resolver (Vertex and local runs; open-source KFP cannot run it)

# Every node that runs a container, in pipeline order.
COMPONENT_IDS = (EXAMPLE_GEN, STATISTICS_GEN, SCHEMA_GEN, PIN_SCHEMA, EXAMPLE_VALIDATOR, ANOMALY_GATE, TRANSFORM,
                 TRAINER, EVALUATOR, PUSHER)
