"""Two libcurls in one Python process, for test_interpose.sh.

pycurl brings libcurl-gnutls.so.4 (privately, RTLD_LOCAL); ctypes loads
libcurl.so.4 (OpenSSL) with RTLD_GLOBAL and calls it through the global
scope, i.e. through the preload's exported curl_* hooks. Each does one GET
of URL (argv[1]) and prints "<which> body=<first line>". The preload's event
lines tell which instance each perform reached.
"""
import ctypes
import io
import sys

import pycurl

url = sys.argv[1]

buf = io.BytesIO()
c = pycurl.Curl()
c.setopt(c.URL, url)
c.setopt(c.PROXY, "")
c.setopt(c.WRITEDATA, buf)
c.perform()
c.close()
print("pycurl body=" + buf.getvalue().decode().splitlines()[0])

ctypes.CDLL("libcurl.so.4", mode=ctypes.RTLD_GLOBAL)
g = ctypes.CDLL(None)
g.curl_easy_init.restype = ctypes.c_void_p
g.curl_easy_setopt.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
g.curl_easy_perform.argtypes = [ctypes.c_void_p]
g.curl_easy_cleanup.argtypes = [ctypes.c_void_p]
WRITE = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.POINTER(ctypes.c_char),
                         ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p)
chunks = []


def on_write(ptr, size, n, _):
    chunks.append(ctypes.string_at(ptr, size * n))
    return size * n


cb = WRITE(on_write)
h = g.curl_easy_init()
g.curl_easy_setopt(h, 10002, ctypes.c_char_p(url.encode()))  # CURLOPT_URL
g.curl_easy_setopt(h, 10004, ctypes.c_char_p(b""))  # CURLOPT_PROXY
g.curl_easy_setopt(h, 20011, ctypes.cast(cb, ctypes.c_void_p))  # WRITEFUNCTION
rc = g.curl_easy_perform(h)
g.curl_easy_cleanup(h)
print("ctypes rc=%d body=%s" % (rc, b"".join(chunks).decode().splitlines()[0]))
