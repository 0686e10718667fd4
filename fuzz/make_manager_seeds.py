#!/usr/bin/env python3
"""make_manager_seeds.py - write the seed inputs of fuzz_manager (a series
of requests, each a little-endian u16 length and the request) into
fuzz/corpus/manager.  The request format is described in src/manager.h;
the tuple encoding in src/args.c."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "manager")
HELLO, CREATE, CALL, INCREF, DECREF, SHUTDOWN = 1, 2, 3, 4, 5, 6


def item(v):
    if v is None:
        return b"\x06"
    if isinstance(v, bool) or isinstance(v, int):
        return b"\x01" + struct.pack("<q", int(v))
    if isinstance(v, float):
        return b"\x02" + struct.pack("<d", v)
    if isinstance(v, str):
        b = v.encode()
        return b"\x03" + struct.pack("<I", len(b)) + b + b"\x00"
    if isinstance(v, bytes):
        return b"\x04" + struct.pack("<I", len(v)) + v
    if isinstance(v, tuple) and v and v[0] == "proxy":
        blob = tup(v[1], v[2], "", b"")
        return b"\x05" + struct.pack("<II", 3, len(blob)) + blob
    if isinstance(v, tuple):
        t = tup(*v)
        return b"\x07" + struct.pack("<I", len(t)) + t
    raise TypeError(v)


def tup(*items):
    return b"MPA1" + struct.pack("<I", len(items)) + b"".join(map(item, items))


def req(op, oid=0, name="", *args):
    n = name.encode()
    return (struct.pack("<BBHIqq", op, 0, 0, len(n), oid, 7) + n +
            tup(*args))


def seed(name, *reqs):
    data = b"".join(struct.pack("<H", len(r)) + r for r in reqs)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


os.makedirs(OUT, exist_ok=True)
seed("dict",
     req(CREATE, 0, "dict"),
     req(CALL, 1, "set", 1, "one"), req(CALL, 1, "set", "k", 2.5),
     req(CALL, 1, "get", 1), req(CALL, 1, "get", 9),
     req(CALL, 1, "items"), req(CALL, 1, "update", 3, None, b"x", (1, 2)),
     req(CALL, 1, "pop", "k"), req(CALL, 1, "len"), req(CALL, 1, "clear"))
seed("list",
     req(CREATE, 0, "list", 1, 2),
     req(CALL, 1, "append", 3), req(CALL, 1, "extend", 4, 5),
     req(CALL, 1, "insert", -1, "x"), req(CALL, 1, "slice", -3, 99),
     req(CALL, 1, "pop", 0), req(CALL, 1, "remove", 3),
     req(CALL, 1, "get", 7), req(CALL, 1, "set", 0, 1.5))
seed("dict_more",
     req(CREATE, 0, "dict", "a", 1, "b", (1, "x")),
     req(CALL, 1, "get", "z", None), req(CALL, 1, "pop", "z", 0),
     req(CALL, 1, "setdefault", "c", 2.5), req(CALL, 1, "setdefault", "a", 0),
     req(CALL, 1, "popitem"), req(CALL, 1, "popitem"), req(CALL, 1, "popitem"),
     req(CALL, 1, "popitem"))
seed("list_sort",
     req(CREATE, 0, "list", 3, 2.5, -1, float("nan"), 2 ** 62),
     req(CALL, 1, "sort"), req(CALL, 1, "sort", 1), req(CALL, 1, "reverse"),
     req(CALL, 1, "index", 3), req(CALL, 1, "index", 3, 1, -1),
     req(CALL, 1, "count", 2.5), req(CALL, 1, "contains", -1),
     req(CREATE, 0, "list", (1, ("a", b"b")), (1, ("a", b"a")), (0,), ()),
     req(CALL, 2, "sort"), req(CALL, 2, "append", (1, (2, "x"))),
     req(CALL, 2, "sort", 0), req(CALL, 2, "append", "s"),
     req(CALL, 2, "sort"), req(CALL, 2, "clear"), req(CALL, 2, "sort"))
seed("nested",
     req(CREATE, 0, "list"), req(CREATE, 0, "dict"),
     req(CALL, 2, "set", "l", ("proxy", "list", 1)),
     req(DECREF, 1, "", 1), req(CALL, 2, "get", "l"),
     req(CALL, 2, "delete", "l"), req(INCREF, 2))
seed("sync",
     req(CREATE, 0, "Lock"), req(CALL, 1, "acquire", 1.0),
     req(CALL, 1, "acquire", 0.0), req(CALL, 1, "release"),
     req(CREATE, 0, "RLock"), req(CREATE, 0, "Condition", ("proxy", "RLock", 2)),
     req(CALL, 3, "acquire"), req(CALL, 3, "wait", 0.0),
     req(CALL, 3, "notify", 2), req(CALL, 3, "release"),
     req(CREATE, 0, "Semaphore", 1), req(CALL, 4, "acquire", 0.0),
     req(CREATE, 0, "Barrier", 2), req(CALL, 5, "wait", 0.0),
     req(CREATE, 0, "Event"), req(CALL, 6, "wait", 0.0))
seed("queue",
     req(CREATE, 0, "JoinableQueue", 2), req(CALL, 1, "put", 0.0, "a"),
     req(CALL, 1, "put", 0.0, ("proxy", "JoinableQueue", 1)),
     req(CALL, 1, "put", 0.0, 3), req(CALL, 1, "get", 0.0),
     req(CALL, 1, "task_done"), req(CALL, 1, "join", 0.0),
     req(CREATE, 0, "Value", "i", 4), req(CALL, 2, "set", 2 ** 40),
     req(CREATE, 0, "Array", "d", 3), req(CALL, 3, "set", 1, 2.0),
     req(CALL, 3, "tolist"), req(CREATE, 0, "Namespace"),
     req(CALL, 4, "setattr", "x", 1), req(CALL, 4, "getattr", "y"))
seed("newer",
     req(CREATE, 0, "Namespace"), req(CALL, 1, "setattr", "b", 2),
     req(CALL, 1, "setattr", "_hidden", 1), req(CALL, 1, "setattr", "a", "x"),
     req(CALL, 1, "vars"), req(CALL, 1, "vars", 1), req(CALL, 1, "items"),
     req(CREATE, 0, "Value", "d", 1.5), req(CALL, 2, "typecode"),
     req(CALL, 2, "typecode", 9),
     req(CREATE, 0, "Array", "i", 4), req(CALL, 3, "typecode"),
     req(CREATE, 0, "list", 1, 2, 3), req(CALL, 4, "slice", 0, 2 ** 62),
     req(CREATE, 0, "Pool"), req(CREATE, 0, "Pool", 2),
     req(CREATE, 0, "Pool", -1), req(CREATE, 0, "Pool", "x"),
     req(CALL, 5, "apply", "", 0, (1, 2)), req(CALL, 5, "map", "", 0, (1,), 0),
     req(CALL, 5, "starmap", "x", -1, ((1,),), 1), req(CALL, 5, "close"),
     req(CALL, 5, "join", 0.5), req(CALL, 5, "terminate"))
seed("bad", req(9), b"\x03\x00", req(CALL, 99, "x" * 300), req(SHUTDOWN))
