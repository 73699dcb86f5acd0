#!/usr/bin/env python3
"""Regenerate the FILES table of crates/cli/src/examples.rs from examples/plugins/."""
import os
import re

root = os.path.join(os.path.dirname(__file__), '..')
plugins = os.path.join(root, 'examples', 'plugins')
target = os.path.join(root, 'crates', 'cli', 'src', 'examples.rs')
files = sorted(
    os.path.relpath(os.path.join(d, f), plugins).replace(os.sep, '/')
    for d, _, fs in os.walk(plugins) for f in fs
)
table = '\n'.join(f'    ("{f}", include_str!("../../../examples/plugins/{f}")),' for f in files)
src = open(target).read()
src = re.sub(r'(pub const FILES: &\[\(&str, &str\)\] = &\[\n)(.*?)(\n\];)', lambda m: m.group(1) + table + m.group(3), src, flags=re.S)
open(target, 'w').write(src)
print(f'{len(files)} files')
