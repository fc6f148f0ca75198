#!/usr/bin/env node
import { main } from './program.js';

// Exit explicitly: a client command is done once it has printed (idle keep-alive sockets need not hold the process).
process.exit(await main(process.argv));
