//! Renderers for pydx profiles (being written).
