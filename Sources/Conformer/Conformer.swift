// The FastConformer encoder: typed weights and streaming step over explicit caches.
