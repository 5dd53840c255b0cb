"""The SQLAlchemy tables (ORM rows), apart from the pydantic bodies the API answers with."""
