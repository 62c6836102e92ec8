"""Test support code: throwaway PostgreSQL clusters and helpers for external CLIs."""
