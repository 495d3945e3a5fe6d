"""HTTP only: parse the request, call one service method, return a wire schema."""
