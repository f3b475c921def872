"""PatchLens core: all logic of the dashboard. Never imports streamlit; imports TensorFlow lazily."""
