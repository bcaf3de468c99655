"""Parts of the Streamlit explorer (app/explorer.py): sidebar, session state, result views."""
