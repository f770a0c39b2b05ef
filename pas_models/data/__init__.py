"""Video data: decoding backends, clip sampling, transforms, dataset formats, synthetic videos."""
