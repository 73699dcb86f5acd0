// @ones-op/node-database: the instance's own SQL database, MySQL 5.7 as ONES
// has it, on the gateway's plugin database (a MySQL/MariaDB server, or the
// embedded SQLite files). Failures reject with a DBError {level, errcode,
// statusCode, reason} carrying ONES's errcodes (DB.SqlSyntaxErr, DB.QuerySqlErr,
// DB.ExecSqlErr, DB.ImportSqlErr, DB.SqlFileFetchingFailed, InvalidParameter, …).
import { database as hostDatabase } from 'interpose:host';
import { DBError } from '@ones-op/node-error';

async function call(op) {
  const r = await hostDatabase(JSON.stringify(op));
  if (!r.ok) throw new DBError('error', r.error.errcode, r.error.status, r.error.reason);
  return r.value;
}

const text = (sql, what) => {
  if (typeof sql !== 'string' || sql.trim() === '') {
    throw new DBError('error', 'InvalidParameter', 400, `${what} takes an SQL string`);
  }
  return sql;
};

export async function importSQL(sqlFileName) {
  await call({ op: 'importSQL', file: String(sqlFileName ?? '') });
}
export async function select(sql) {
  return call({ op: 'select', sql: text(sql, 'select') });
}
export async function exec(operate, sql) {
  await call({ op: 'exec', operate: String(operate ?? '').toLowerCase(), sql: text(sql, 'exec') });
}
export async function count(sql) {
  return call({ op: 'count', sql: text(sql, 'count') });
}
export { DBError };
export default { importSQL, select, exec, count, DBError };
