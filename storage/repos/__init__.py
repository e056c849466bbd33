"""Small repositories, one per aggregate. Each wraps an ``AsyncSession`` it does not own."""
