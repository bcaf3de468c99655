"""Placeholder explorer page (replaced by the full Streamlit explorer)."""

import numpy as np
import streamlit as st

import hmsa_core
from hmsa_core.models import build

st.title("HMSA Explorer")
model = build("lite", 19).eval()
image = (np.random.default_rng(0).random((128, 256, 3)) * 255).astype(np.uint8)
result = hmsa_core.infer(image, (0.5, 1.0, 2.0), model=model)
st.image(result.labels.colorize(result.pred), caption="merged prediction (random weights)")
