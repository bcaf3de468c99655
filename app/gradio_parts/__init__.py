"""Pieces of the Gradio app: handlers (ValueError -> gr.Error) and value conversions."""
