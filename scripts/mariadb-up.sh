#!/usr/bin/env bash
# Start the local MariaDB if it is not answering, and wait (bounded) until it does.
set -euo pipefail
ping() { mysqladmin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1; }
# The tests bulk-insert 200 k-row histories: Debian's 128 MB buffer pool can run out of lock space.
pool() { mysql --protocol=tcp -h127.0.0.1 -P3306 -uroot -e \
  "SET GLOBAL innodb_buffer_pool_size = GREATEST(@@innodb_buffer_pool_size, 1073741824)" >/dev/null 2>&1 || true; }
ping && { pool; exit 0; }
echo "setup: starting MariaDB"
install -d -o mysql -g mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
for _ in $(seq 1 60); do ping && { pool; exit 0; }; sleep 1; done
echo "setup: MariaDB did not answer on 127.0.0.1:3306 within 60 s; see /var/log/mysql" >&2
exit 1
