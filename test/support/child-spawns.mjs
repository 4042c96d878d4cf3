// Preloaded into a process under test (`node --import <this file>`): every
// child process it starts is reported on stderr, so a test can tell a fetch
// made in-process from one made through a child.
import { subscribe } from 'node:diagnostics_channel';

subscribe('child_process', ({ process: child }) => process.stderr.write(`[child_process] ${child.spawnfile}\n`));
