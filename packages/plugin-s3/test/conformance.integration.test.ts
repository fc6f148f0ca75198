// The ArtifactStore contract on the S3 peer (versitygw). Parts of 5 MiB, S3's minimum, so that the suite's large
// bodies (12 to 64 MiB) go through uploads in parts and their sha256 record, not only single PutObjects.
import { artifactStoreConformance } from '@mlplane/core/testing';
import { S3ArtifactStore } from '../src/s3-artifact-store.js';
import { peerConfig, removeAll } from './peer.js';

artifactStoreConformance('S3ArtifactStore (versitygw peer, 5 MiB parts)', async () => {
  const store = await S3ArtifactStore.connect(peerConfig({ partSizeMiB: 5 }));
  // versitygw's posix backend keeps objects as files: 'a' and 'a/b' cannot both exist, segments are <= 255 bytes.
  return { store, cleanup: () => removeAll(store), keysAsFiles: true };
});
