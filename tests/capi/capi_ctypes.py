"""capi_ctypes.py — drives the public C API of libllmmeter.so through
Python's ctypes (Debian's python3, nothing installed), for
tests/integration/test_capi.sh.

The same script of operations as capi_client.c, with the library's path
first:

    python3 capi_ctypes.py LIB price MODEL PROVIDER USAGE
    python3 capi_ctypes.py LIB run BUDGET AGENT OP...

USAGE is input,output,cache_read,cache_write,reasoning; ops are
admit:MODEL:PROVIDER:EST, charge:USAGE, settle:USAGE|-, release,
status:FILE, exec:SHELL-COMMAND; one line of output per operation, as capi_client prints.
"""
import ctypes
import sys


class Usage(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                ("input", ctypes.c_uint64), ("output", ctypes.c_uint64),
                ("cache_read", ctypes.c_uint64),
                ("cache_write", ctypes.c_uint64),
                ("reasoning", ctypes.c_uint64)]


def usage(text):
    i, o, cr, cw, r = (int(x) for x in text.split(","))
    return Usage(ctypes.sizeof(Usage), 0, i, o, cr, cw, r)


def load(path):
    lib = ctypes.CDLL(path)
    P = ctypes.c_void_p
    sig = {
        "llmmeter_version": (ctypes.c_uint, []),
        "llmmeter_last_error": (ctypes.c_char_p, []),
        "llmmeter_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_uint,
                                         ctypes.POINTER(P)]),
        "llmmeter_close": (ctypes.c_int, [P]),
        "llmmeter_admit": (ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_char_p,
                                          ctypes.c_char_p,
                                          ctypes.POINTER(Usage),
                                          ctypes.POINTER(P)]),
        "llmmeter_charge": (ctypes.c_int, [P, ctypes.POINTER(Usage)]),
        "llmmeter_settle": (ctypes.c_int, [P, ctypes.POINTER(Usage),
                                           ctypes.POINTER(ctypes.c_int64)]),
        "llmmeter_release": (ctypes.c_int, [P]),
        "llmmeter_price": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p,
                                          ctypes.POINTER(Usage),
                                          ctypes.POINTER(ctypes.c_int64)]),
        "llmmeter_status_json": (ctypes.c_int, [P, ctypes.POINTER(P)]),
        "llmmeter_free": (None, [P]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def opt(s):
    return None if s == "-" else s.encode()


def main(argv):
    lib = load(argv[1])
    if lib.llmmeter_version() >> 16 != 1:
        print("capi_ctypes: unexpected API version", file=sys.stderr)
        return 1

    def line(op, rc):
        why = lib.llmmeter_last_error().decode()
        print(f"{op} {rc}" + (f" {why}" if why else ""))

    if argv[2] == "price":
        pusd = ctypes.c_int64(0)
        u = usage(argv[5])
        rc = lib.llmmeter_price(argv[3].encode(), opt(argv[4]),
                                ctypes.byref(u), ctypes.byref(pusd))
        print(f"price {rc} {pusd.value}")
        return 0
    if argv[2] != "run":
        return 2
    budget, agent = ctypes.c_void_p(), opt(argv[4])
    rc = lib.llmmeter_open(argv[3].encode(), 0, ctypes.byref(budget))
    if rc != 0:
        line("open", rc)
        return 1
    call = ctypes.c_void_p()
    for op in argv[5:]:
        if op.startswith("admit:"):
            _, model, prov, est = op.split(":")
            e = None if est == "-" else ctypes.byref(usage(est))
            rc = lib.llmmeter_admit(budget, model.encode(), agent, opt(prov),
                                    e, ctypes.byref(call))
            line("admit", rc)
        elif op.startswith("charge:"):
            u = usage(op[7:])
            line("charge", lib.llmmeter_charge(call, ctypes.byref(u)))
        elif op.startswith("settle:"):
            f = None if op[7:] == "-" else ctypes.byref(usage(op[7:]))
            cost = ctypes.c_int64(-1)
            rc = lib.llmmeter_settle(call, f, ctypes.byref(cost))
            print(f"settle {rc} {cost.value}")
            if rc == 0:
                call = ctypes.c_void_p()
        elif op == "release":
            line("release", lib.llmmeter_release(call))
            call = ctypes.c_void_p()
        elif op.startswith("status:"):
            doc = ctypes.c_void_p()
            rc = lib.llmmeter_status_json(budget, ctypes.byref(doc))
            if rc == 0:
                with open(op[7:], "w") as f:
                    f.write(ctypes.string_at(doc).decode())
                lib.llmmeter_free(doc)
            line("status", rc)
        elif op.startswith("exec:"):
            # a shell command between two operations (test_redis.sh: stall
            # the server so that a settle's reply is lost)
            import subprocess
            line("exec", subprocess.call(op[5:], shell=True))
        else:
            return 2
    if call:
        lib.llmmeter_release(call)
    return 0 if lib.llmmeter_close(budget) == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
