#!/usr/bin/env python3
"""Import loops between the files of a crate.

Usage: scripts/import-loops.py <crate>/src [--edges]

Builds the file-level graph of `crate::`, `super::`, `self::` and child-module
paths in code (not comments or doc links; outside `#[cfg(test)] mod tests`), following `pub use` re-exports to
the file that defines the item (a facade is not a dependency: `pub use` lines
themselves add no edge), and prints every strongly connected component of
more than one file. Exits 1 when there is a loop.
"""
import os, re, sys
root = sys.argv[1].rstrip('/')
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f); files[os.path.relpath(p, root)] = p
def modpath(rel):
    parts = rel[:-3].split('/')
    if parts[-1] in ('mod', 'lib'): parts = parts[:-1]
    return tuple(parts)
mod2file = {modpath(r): r for r in files}
def strip_tests(src):
    m = re.search(r'#\[cfg\(test\)\]\s*mod tests\s*\{', src)
    return src[:m.start()] if m else src
srcs = {r: strip_tests(open(p).read()) for r, p in files.items()}
# re-exports: file -> {name: path segments (absolute)}
def absolute(rel, head, rest):
    here = modpath(rel)
    if head == 'crate': return list(rest)
    if head == 'self': return list(here) + list(rest)
    if head == 'super': return list(here[:-1]) + list(rest)
    # bare: child module of here?
    if tuple(here) + (head,) in mod2file: return list(here) + [head] + list(rest)
    return None
reexp = {r: {} for r in files}
for rel, src in srcs.items():
    for m in re.finditer(r'pub(?:\([^)]*\))?\s+use\s+([^;]+);', src, re.S):
        body = re.sub(r'\s+as\s+\w+', '', m.group(1))  # `a::B as C` re-exports B
        body = re.sub(r'\s+', '', body)
        # expand one level of braces: a::b::{c, d::e}
        mm = re.match(r'((?:\w+::)*)\{(.*)\}$', body)
        items = [mm.group(1) + x for x in mm.group(2).split(',') if x] if mm else [body]
        for it in items:
            segs = [s for s in it.split('::') if s]
            if not segs: continue
            a = absolute(rel, segs[0], segs[1:]) if segs[0] in ('crate','self','super') or tuple(modpath(rel))+(segs[0],) in mod2file else None
            if a: reexp[rel][segs[-1]] = a
def resolve(segs, depth=0):
    for n in range(len(segs), -1, -1):
        t = tuple(segs[:n])
        if t in mod2file:
            f = mod2file[t]
            if n < len(segs) and segs[n] in reexp[f] and depth < 10:
                r = resolve(reexp[f][segs[n]] + segs[n+1:], depth + 1)
                if r: return r
            return f
    return None
edges = {r: set() for r in files}
for rel, src in srcs.items():
    here = modpath(rel)
    src = re.sub(r'//[^\n]*', '', src)  # comments and doc links are not imports
    src = re.sub(r'pub(?:\([^)]*\))?\s+use\s+[^;]+;', '', src)
    def add(segs):
        t = resolve(segs)
        if t and t != rel: edges[rel].add(t)
    for m in re.finditer(r'(?<![\w:])(crate|super|self)((?:::\w+)+)(::\{)?', src):
        head = m.group(1); rest = m.group(2).strip(':').split('::')
        base = absolute(rel, head, [])
        if m.group(3):
            # brace group
            start = m.end(); depth = 1; j = start
            while depth and j < len(src):
                depth += {'{':1,'}':-1}.get(src[j], 0); j += 1
            for item in re.findall(r'(\w+(?:::\w+)*)', src[start:j-1]):
                add(base + rest + item.split('::'))
        else:
            add(base + rest)
    for m in re.finditer(r'(?<![\w:])(crate|super)::\{', src):
        base = absolute(rel, m.group(1), [])
        start = m.end(); depth = 1; j = start
        while depth and j < len(src):
            depth += {'{':1,'}':-1}.get(src[j], 0); j += 1
        for item in re.findall(r'(\w+(?:::\w+)*)', src[start:j-1]):
            add(base + item.split('::'))
    # bare child-module paths: `child::X` in a mod file
    for m in re.finditer(r'(?<![\w:])(\w+)((?:::\w+)+)', src):
        if here + (m.group(1),) in mod2file and m.group(1) not in ('crate','self','super'):
            add(list(here) + [m.group(1)] + m.group(2).strip(':').split('::'))
index = {}; low = {}; st = []; on = set(); sccs = []; i = [0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v] = low[v] = i[0]; i[0] += 1; st.append(v); on.add(v)
    for w in sorted(edges[v]):
        if w not in index: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(comp)
for v in sorted(files):
    if v not in index: sc(v)
loops = [sorted(c) for c in sccs if len(c) > 1]
for c in loops:
    print('LOOP:', ' '.join(c))
    if '--edges' in sys.argv:
        for a in c: print('   ', a, '->', ' '.join(sorted(b for b in edges[a] if b in c)))
print(f'{len(loops)} loop(s)')
sys.exit(1 if loops else 0)
