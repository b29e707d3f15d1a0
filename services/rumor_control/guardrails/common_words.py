"""Words too common to identify anyone on their own, per language (leak check).

A restricted value often holds ordinary words ("the back gate of the school", "silver
pickup with a name plate"). Fingerprints are made per word run, so without this list every
bulletin saying "back", "name" or "plate" would be blocked. A word listed here never
blocks alone, and a phrase blocks only with a name-like or two uncommon words in it (see
leaks.py). Keep first names, surnames and place names out: those are what must block.
"""

from __future__ import annotations

from schemas.base import Language
from schemas.fingerprints import normalize

__all__ = ["COMMON_WORDS"]


def _folded(words: str) -> list[str]:
    # Folded as drafts are (accents and case dropped), so "mañana" is listed once.
    return normalize(words).split()


_SHARED = _folded("""
a al am an and any are as at be been but by can could do does for from had has have he her
him his how i if in into is it its may me more most my near no nor not now of off on once
one only or our out over own pm she should so some such than that the their them then there
these they this those through to too under until up upon us very was we were what when where
which while who whom why will with would you your yours ago also after again against all
before behind below between both down during each few further here just other same
""")


_EN = _folded("""
about above across address agency agent agents alert all already area areas around arrest
arrested arrests asked assessment available avenue back bakery bank blue building bulletin
bus business call called calls car cars center centre check checked checking children
church city clinic community confirmed contact corner court day days department detail
details detain detained drill drive east enforcement english entrance every exercise fact
facts false family families federal field floor forum friday front garage gate gates green
grey gray help home homes hospital hour hours house houses immigration information inside
known know last lane later leaders left line local look looking market message monday
morning name names neighborhood neighbourhood news next night north number office officer
officers official operation operations outside park parking partners people person phone
place plate plates please police policy public question questions radio raid raids read
red report reported reports restaurant right road rumor rumors rumour rumours safe saturday
school schools seen service share side silver south spanish station statement stop store
street sunday take taking team test thursday time today tomorrow tonight truck tuesday
update updated van vehicle vehicles verify verified wednesday week west white work workers
worksite yesterday yet black brown car gray pickup sedan suv door doors parking lot
""")


_ES = _folded("""
a acerca agente agentes ahora al alerta algo antes aqui aquí area área areas áreas arresto
arrestos atras atrás autobus autobús avenida ayer barrio blanco boletin boletín buscan
calle camion camión carro carros casa casas centro cerca ciudad clinica clínica comunidad
con confirmado consejo contra cuando de del departamento desde despues después detalles
dia día dias días dicen donde dónde durante el ella ellos en entrada es escuela escuelas
esta está estan están este esto familia familias federal federales gente hay hecho hechos
hora horas hoy iglesia informacion información inmigracion inmigración jueves la las linea
línea lo los lunes manana mañana martes mercado miercoles miércoles mientras nombre
nombres noche no nos nuestra nuestro operacion operación operativo operativos para parque
persona personas placa placas policia policía politica política por porque pregunta
preguntas publico público puerta puertas que qué radio redada redadas rumor rumores sabado
sábado se segun según si sí sin sobre su sus tarde telefono teléfono tienda todo todos
trabajo trabajadores un una unos verdad verificado viernes y ya camioneta negro
rojo gris plata azul verde vehiculo vehículo vehiculos vehículos simulacro oficiales
""")


COMMON_WORDS: dict[Language, frozenset[str]] = {
    "en": frozenset(_SHARED + _EN),
    "es": frozenset(_SHARED + _ES),
}
