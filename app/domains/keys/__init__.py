"""/v1/keys: API keys over HTTP for admin keys bound to no collection (the console's
keys page); `facesvc keys` does the same from the command line."""
