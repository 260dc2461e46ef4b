//! logwarden detect: rolling baselines per series and explained alerts.
