"""The tumour stage: fuzzy clustering (GK, FCM, K-means), the deep segmenters' inference, measurements."""
