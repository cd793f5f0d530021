// How the job's metadata database name reaches every bucardo command, the daemon and the kicker:
// job.metadataDb. Here it answers from the preparation marker each time it is read, so that
// - after concurrency.install (even earlier in the same session) it is the prepared name;
// - before it, or after concurrency.uninstall, reading it refuses with the next step, and no
//   bucardo command can fall back to Bucardo's default database 'bucardo' by mistake;
// - a name changed in the config after install refuses instead of losing the installed database.
// The bucardo plugin needs no knowledge of this plugin for any of that.
import { OperatorError } from '../../src/core/errors.js';
import { jobTitle, type Job } from '../../src/core/job.js';
import { markerFile, readMarker } from './marker.js';
import { DEFAULT_METADATA_DB, serverKey } from './settings.js';

export function bindMetadataDb(job: Job, configuredName: string): void {
  Object.defineProperty(job, 'metadataDb', {
    configurable: true,
    // Enumerable, so that the kicker's spec (the job as JSON) carries the prepared name.
    enumerable: true,
    get: () => preparedMetadataDb(job, configuredName),
    set: () => {
      throw new Error(
        `the concurrency plugin names ${jobTitle(job)}'s metadata database (concurrency.bucardo_dbname); no other plugin may set job.metadataDb`,
      );
    },
  });
}

export function preparedMetadataDb(job: Job, configuredName: string): string {
  const marker = readMarker(job.paths.stateDir);
  const title = jobTitle(job);
  if (!marker) {
    throw new OperatorError(
      `${title} uses the concurrency plugin (metadata database '${configuredName}') but has not been prepared: run concurrency.install before bucardo.install. Until then no bucardo command runs, so nothing lands in Bucardo's default database '${DEFAULT_METADATA_DB}' by mistake.`,
    );
  }
  if (marker.metadataDb !== configuredName) {
    throw new OperatorError(
      `${title} was prepared by concurrency.install for the metadata database '${marker.metadataDb}' (${markerFile(job.paths.stateDir)}), but concurrency.bucardo_dbname now says '${configuredName}'. Put '${marker.metadataDb}' back to reach this job's metadata (to move the job: bucardo.uninstall and concurrency.uninstall with the old name, then install with the new one); if '${marker.metadataDb}' was never installed, run concurrency.install to switch to '${configuredName}'.`,
    );
  }
  const server = serverKey(job.config.databases.bucardo);
  if (marker.metadataServer && marker.metadataServer !== server) {
    throw new OperatorError(
      `${title} was prepared by concurrency.install for a metadata database on ${marker.metadataServer}, but databases.bucardo now points at ${server}. Put the old host and port back to reach this job's metadata, or, if nothing was installed there, run concurrency.install again.`,
    );
  }
  return configuredName;
}
