-- One database per service; run once by the postgres container at first start.
CREATE DATABASE intelshare_gateway OWNER intelshare;
CREATE DATABASE intelshare_nl_customs OWNER intelshare;
CREATE DATABASE intelshare_be_police OWNER intelshare;
CREATE DATABASE intelshare_de_customs OWNER intelshare;
