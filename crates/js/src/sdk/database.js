// @ones-op/node-database: a plugin's MySQL 5.7 database is not provided by
// interpose yet. A plugin importing it loads; each call rejects with a DBError
// (501) that says so.
import { DBError } from '@ones-op/node-error';

const notYet = (what) => async () => {
  throw new DBError('error', 'DB.NotAvailable', 501, `${what}: the plugin database (@ones-op/node-database) is not provided by interpose yet`);
};
export const importSQL = notYet('importSQL');
export const select = notYet('select');
export const exec = notYet('exec');
export const count = notYet('count');
export { DBError };
export default { importSQL, select, exec, count, DBError };
