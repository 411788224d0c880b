"""sonolab: experiments."""
