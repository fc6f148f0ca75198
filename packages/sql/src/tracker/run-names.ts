import { randomInt } from 'node:crypto';

const ADJECTIVES = [
  'amber',
  'bold',
  'brisk',
  'calm',
  'clever',
  'crisp',
  'daring',
  'eager',
  'fluent',
  'gentle',
  'glad',
  'keen',
  'lucid',
  'merry',
  'nimble',
  'quiet',
  'rapid',
  'sharp',
  'steady',
  'swift',
  'tidy',
  'vivid',
  'warm',
  'wise',
];
const NOUNS = [
  'badger',
  'bee',
  'crane',
  'dolphin',
  'eagle',
  'falcon',
  'fox',
  'gecko',
  'heron',
  'ibis',
  'koala',
  'lark',
  'lynx',
  'moth',
  'newt',
  'otter',
  'owl',
  'panda',
  'quail',
  'raven',
  'seal',
  'swan',
  'tiger',
  'wren',
];

/** A human-readable default run name, as MLflow's `<adjective>-<noun>-<number>`. */
export function generateRunName(): string {
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${randomInt(1000)}`;
}
