"""Workflow inputs, outputs and messages: pydantic models that import nothing from
``temporalio``, services or activities, so the API, services, activities and tests can
use them without loading a workflow (and its activities) to get a type."""
