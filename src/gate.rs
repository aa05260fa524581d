//! The decision pipeline shared by the CLI, the evaluate API and the proxy. (placeholder)
