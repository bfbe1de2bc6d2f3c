#!/usr/bin/env bash
# Start the local MariaDB if it is not answering, and wait (bounded) until it does.
set -euo pipefail
ping() { mysqladmin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1; }
ping && exit 0
echo "setup: starting MariaDB"
install -d -o mysql -g mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
for _ in $(seq 1 60); do ping && exit 0; sleep 1; done
echo "setup: MariaDB did not answer on 127.0.0.1:3306 within 60 s; see /var/log/mysql" >&2
exit 1
