"""Images as numbers: the synthetic lumbar spine phantom and the sample studies made from it.

An adapter layer: it may use ``mri_pipeline.config`` and ``mri_pipeline.domain`` only.
"""
