"""Small built-in name, company-word and address lists per naming tradition, in native scripts with Latin spellings.

Each pool is written as compact text: entries separated by commas, ``native=latin1/latin2`` where
the native script is not Latin (the first Latin spelling is the usual one, the others are
transliteration variants seen on documents and watchlists), ``male>female`` where a family name
changes with gender. Latin-script entries get their ASCII folding (``Müller`` -> ``Muller``) as a
variant. The lists are deliberately small: common names recur, which is what makes name
screening hard (innocent customers share names with watchlist entries).
"""

from __future__ import annotations

from dataclasses import dataclass

from anyascii import anyascii


@dataclass(frozen=True)
class Name:
    """One name with its native form and Latin spellings (first = usual)."""

    native: str
    latin: tuple[str, ...]


@dataclass(frozen=True)
class FamilyName:
    """A family name in its male and female forms."""

    male: Name
    female: Name


@dataclass(frozen=True)
class NamePool:
    """Names of one naming tradition.

    Attributes:
        code: pool code, e.g. ``"ru"``.
        latin_script: whether the native script is Latin.
        native_share: share of profiles whose document name is in the native script (non-Latin pools).
        family_first: whether the native order is family name first (Chinese, Japanese, Korean,
            Vietnamese, Hungarian-style); Latin spellings may use either order.
        native_sep: separator between native name parts ("" for Chinese and Korean).
        male, female, family: the names.
        middle_male, middle_female: optional middle names (Vietnamese ``Văn``/``Thị``).
    """

    code: str
    latin_script: bool
    native_share: float
    family_first: bool
    native_sep: str
    male: tuple[Name, ...]
    female: tuple[Name, ...]
    family: tuple[FamilyName, ...]
    middle_male: tuple[Name, ...] = ()
    middle_female: tuple[Name, ...] = ()


def _variants(latin: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for spelling in [*latin, *(anyascii(s) for s in latin)]:
        if spelling and spelling not in out:
            out.append(spelling)
    return tuple(out)


def _name(entry: str) -> Name:
    native, _, latin = entry.strip().partition("=")
    return Name(native, _variants(latin.split("/") if latin else [native]))


def _feminine(text: str, rule: str) -> str:
    if rule == "ru" and text[-2:] in ("ов", "ев", "ин", "ёв", "ov", "ev", "in"):
        return text + ("а" if text[-1] in "вн" else "a")
    if rule == "pl":
        for male, female in (("ski", "ska"), ("cki", "cka"), ("dzki", "dzka")):
            if text.endswith(male):
                return text[: -len(male)] + female
    return text


def _family(entry: str, rule: str) -> FamilyName:
    native, _, latin = entry.strip().partition("=")
    native_m, _, native_f = native.partition(">")
    latin_m, latin_f = [], []
    for spelling in latin.split("/") if latin else [native]:
        male, _, female = spelling.partition(">")
        latin_m.append(male)
        latin_f.append(female or _feminine(male, rule))
    native_f = native_f or _feminine(native_m, rule)
    return FamilyName(Name(native_m, _variants(latin_m)), Name(native_f, _variants(latin_f)))


def _pool(
    code: str,
    male: str,
    female: str,
    family: str,
    *,
    latin_script: bool = True,
    native_share: float = 1.0,
    family_first: bool = False,
    native_sep: str = " ",
    feminine: str = "",
    middle_male: str = "",
    middle_female: str = "",
) -> NamePool:
    def names(text: str) -> tuple[Name, ...]:
        return tuple(_name(e) for e in text.split(",") if e.strip())

    return NamePool(
        code=code,
        latin_script=latin_script,
        native_share=native_share,
        family_first=family_first,
        native_sep=native_sep,
        male=names(male),
        female=names(female),
        family=tuple(_family(e, feminine) for e in family.split(",") if e.strip()),
        middle_male=names(middle_male),
        middle_female=names(middle_female),
    )


POOLS: dict[str, NamePool] = {
    p.code: p
    for p in (
        _pool(
            "en",
            "James,John,Robert,Michael,William,David,Richard,Joseph,Thomas,Christopher,Daniel,Matthew,Andrew,Mark,Paul,Steven,Kevin,Brian,George,Edward",
            "Mary,Patricia,Jennifer,Linda,Elizabeth,Barbara,Susan,Jessica,Sarah,Karen,Emily,Olivia,Emma,Nancy,Lisa,Margaret,Sandra,Ashley,Rebecca,Laura",
            "Smith,Johnson,Williams,Brown,Jones,Miller,Davis,Wilson,Anderson,Taylor,Thomas,Moore,Martin,Jackson,Thompson,White,Harris,Clark,Lewis,Robinson,Walker,Young,Allen,King,Wright,Scott,Green,Baker,Adams,Campbell",
        ),
        _pool(
            "de",
            "Lukas,Jonas,Leon,Finn,Paul,Felix,Maximilian,Jan,Tim,Stefan,Andreas,Jürgen,Thomas,Michael,Klaus,Wolfgang,Matthias,Florian",
            "Anna,Lea,Lena,Hannah,Sophie,Marie,Laura,Julia,Katharina,Sabine,Petra,Ursula,Monika,Claudia,Susanne,Birgit,Jana,Lisa",
            "Müller,Schmidt,Schneider,Fischer,Weber,Meyer,Wagner,Becker,Schulz,Hoffmann,Schäfer,Koch,Bauer,Richter,Klein,Wolf,Schröder,Neumann,Schwarz,Zimmermann,Braun,Krüger,Hofmann,Hartmann",
        ),
        _pool(
            "fr",
            "Jean,Pierre,Louis,Hugo,Lucas,Nicolas,Antoine,Mathieu,Thomas,François,Guillaume,Olivier,Philippe,Julien,Sébastien,Théo",
            "Marie,Camille,Léa,Manon,Chloé,Julie,Sophie,Élodie,Inès,Claire,Amélie,Nathalie,Isabelle,Céline,Aurélie,Margaux",
            "Martin,Bernard,Dubois,Thomas,Robert,Richard,Petit,Durand,Leroy,Moreau,Simon,Laurent,Lefèvre,Michel,Garcia,David,Bertrand,Roux,Vincent,Fournier,Morel,Girard,Diallo,Traoré",
        ),
        _pool(
            "es",
            "José,Juan,Luis,Carlos,Javier,Miguel,Alejandro,Diego,Fernando,Jorge,Andrés,Pablo,Santiago,Mateo,Ricardo,Eduardo",
            "María,Carmen,Ana,Lucía,Laura,Sofía,Valentina,Isabel,Paula,Gabriela,Camila,Daniela,Elena,Marta,Rosa,Verónica",
            "García,Rodríguez,González,Fernández,López,Martínez,Sánchez,Pérez,Gómez,Martín,Jiménez,Ruiz,Hernández,Díaz,Moreno,Álvarez,Romero,Torres,Ramírez,Flores,Vargas,Castro,Rojas,Morales",
        ),
        _pool(
            "pt",
            "João,Pedro,Lucas,Gabriel,Rafael,Mateus,Thiago,Gustavo,Felipe,Bruno,Rodrigo,Tiago,André,Luiz",
            "Maria,Ana,Juliana,Fernanda,Camila,Beatriz,Larissa,Mariana,Letícia,Patrícia,Aline,Inês,Bruna,Carla",
            "Silva,Santos,Oliveira,Souza,Rodrigues,Ferreira,Alves,Pereira,Lima,Gomes,Costa,Ribeiro,Martins,Carvalho,Almeida,Lopes,Soares,Fernandes,Araújo,Barbosa",
        ),
        _pool(
            "it",
            "Giuseppe,Giovanni,Antonio,Marco,Luca,Alessandro,Andrea,Matteo,Francesco,Lorenzo,Davide,Roberto,Stefano,Paolo",
            "Maria,Anna,Giulia,Francesca,Chiara,Sara,Elena,Valentina,Martina,Alessandra,Federica,Silvia,Paola,Laura",
            "Rossi,Russo,Ferrari,Esposito,Bianchi,Romano,Colombo,Ricci,Marino,Greco,Bruno,Gallo,Conti,De Luca,Mancini,Costa,Giordano,Rizzo,Lombardi,Moretti",
        ),
        _pool(
            "nl",
            "Daan,Sem,Lucas,Jan,Pieter,Thijs,Bram,Ruben,Stijn,Joost,Wouter,Koen",
            "Emma,Julia,Sophie,Anna,Lotte,Sanne,Fleur,Eva,Lieke,Femke,Anouk,Iris",
            "de Jong,Jansen,de Vries,van den Berg,van Dijk,Bakker,Janssen,Visser,Smit,Meijer,de Boer,Mulder,de Groot,Bos,Peeters,Maes",
        ),
        _pool(
            "pl",
            "Piotr,Krzysztof,Tomasz,Paweł,Michał,Marcin,Jakub,Łukasz,Adam,Marek,Grzegorz,Kamil",
            "Anna,Maria,Katarzyna,Małgorzata,Agnieszka,Ewa,Magdalena,Joanna,Barbara,Zofia,Monika,Aleksandra",
            "Nowak,Kowalski,Wiśniewski,Wójcik,Kowalczyk,Kamiński,Lewandowski,Zieliński,Szymański,Woźniak,Dąbrowski,Kozłowski,Jankowski,Mazur,Kwiatkowski,Krawczyk",
            feminine="pl",
        ),
        _pool(
            "nordic",
            "Erik,Lars,Johan,Anders,Mikael,Nils,Oskar,Mattias,Mikko,Jukka,Søren,Henrik",
            "Anna,Maria,Emma,Sara,Elin,Ingrid,Astrid,Karin,Sanna,Aino,Mette,Sofie",
            "Andersson,Johansson,Karlsson,Nilsson,Eriksson,Larsson,Olsson,Persson,Hansen,Jensen,Nielsen,Pedersen,Virtanen,Korhonen,Lindqvist,Berg",
        ),
        _pool(
            "ce",
            "Jan,Petr,Tomáš,Martin,Lukáš,László,Zoltán,Andrei,Ionuț,Marko,Nikola,Dragan,Bogdan,Gábor",
            "Jana,Eva,Lucie,Petra,Andrea,Ivana,Milica,Elena,Ioana,Katalin,Zsófia,Maja,Ana,Tereza",
            "Novák,Svoboda,Dvořák,Černý,Horváth,Nagy,Kovács,Tóth,Popescu,Ionescu,Popa,Horvat,Kovačević,Jovanović,Petrović,Nikolić,Kovač,Marković",
        ),
        _pool(
            "ru",
            "Александр=Aleksandr/Alexander/Aleksander,Сергей=Sergei/Sergey/Serguei,Дмитрий=Dmitry/Dmitrii/Dmitriy,"
            "Андрей=Andrei/Andrey,Алексей=Alexei/Aleksei/Alexey,Иван=Ivan,Михаил=Mikhail/Michail,"
            "Николай=Nikolai/Nikolay,Владимир=Vladimir/Wladimir,Евгений=Evgeny/Yevgeny/Evgenii,Юрий=Yuri/Yury/Iurii,"
            "Игорь=Igor,Олег=Oleg,Виктор=Viktor/Victor",
            "Ольга=Olga,Елена=Elena/Yelena,Татьяна=Tatiana/Tatyana,Наталья=Natalia/Natalya,Ирина=Irina,Анна=Anna,"
            "Мария=Maria/Mariya,Екатерина=Ekaterina/Yekaterina,Светлана=Svetlana,Юлия=Yulia/Iuliia/Julia,"
            "Людмила=Lyudmila/Ludmila,Галина=Galina",
            "Иванов=Ivanov,Смирнов=Smirnov,Кузнецов=Kuznetsov,Попов=Popov,Васильев=Vasilyev/Vasiliev,Петров=Petrov,"
            "Соколов=Sokolov,Михайлов=Mikhailov/Mikhaylov,Новиков=Novikov,Фёдоров=Fedorov/Fyodorov,Морозов=Morozov,"
            "Волков=Volkov,Алексеев=Alekseev/Alexeyev,Лебедев=Lebedev,Семёнов=Semenov/Semyonov,Егоров=Egorov/Yegorov,"
            "Павлов=Pavlov,Козлов=Kozlov,Степанов=Stepanov,Николаев=Nikolaev/Nikolayev,Орлов=Orlov,Андреев=Andreev/Andreyev,"
            "Макаров=Makarov,Зайцев=Zaitsev/Zaytsev",
            latin_script=False,
            native_share=0.5,
            feminine="ru",
        ),
        _pool(
            "uk",
            "Олександр=Oleksandr/Olexandr/Alexander,Андрій=Andrii/Andriy,Сергій=Serhii/Serhiy/Sergiy,Дмитро=Dmytro,"
            "Володимир=Volodymyr,Микола=Mykola,Тарас=Taras,Богдан=Bohdan/Bogdan,Юрій=Yurii/Yuriy",
            "Олена=Olena,Наталія=Nataliia/Natalia,Ірина=Iryna,Оксана=Oksana,Юлія=Yuliia/Yulia,Тетяна=Tetiana/Tetyana,"
            "Марія=Mariia/Maria,Галина=Halyna",
            "Шевченко=Shevchenko,Коваленко=Kovalenko,Бондаренко=Bondarenko,Ткаченко=Tkachenko,Кравченко=Kravchenko,"
            "Мельник=Melnyk/Melnik,Бойко=Boiko/Boyko,Коваль=Koval,Олійник=Oliinyk/Oliynyk,Шевчук=Shevchuk,"
            "Поліщук=Polishchuk,Савченко=Savchenko,Руденко=Rudenko,Марченко=Marchenko",
            latin_script=False,
            native_share=0.4,
        ),
        _pool(
            "el",
            "Γεώργιος=Georgios/Giorgos,Ιωάννης=Ioannis/Giannis,Κωνσταντίνος=Konstantinos/Constantinos,"
            "Δημήτριος=Dimitrios/Demetrios,Νικόλαος=Nikolaos,Παναγιώτης=Panagiotis/Panayiotis,Χρήστος=Christos",
            "Μαρία=Maria,Ελένη=Eleni,Αικατερίνη=Aikaterini/Ekaterini,Βασιλική=Vasiliki,Σοφία=Sofia,Αγγελική=Angeliki",
            "Παπαδόπουλος>Παπαδοπούλου=Papadopoulos>Papadopoulou,Παπαδάκης>Παπαδάκη=Papadakis>Papadaki,"
            "Γεωργίου=Georgiou,Οικονόμου=Oikonomou/Economou,Βασιλείου=Vasileiou/Vassiliou,Νικολάου=Nikolaou,"
            "Δημητρίου=Dimitriou,Μακρής>Μακρή=Makris>Makri,Αθανασίου=Athanasiou,"
            "Καραγιάννης>Καραγιάννη=Karagiannis>Karagianni,Ιωάννου=Ioannou,Χριστοδούλου=Christodoulou",
            latin_script=False,
            native_share=0.5,
        ),
        _pool(
            "tr",
            "Mehmet,Mustafa,Ahmet,Ali,Hüseyin,Hasan,İbrahim,Murat,Emre,Burak,Can,Serkan",
            "Fatma,Ayşe,Emine,Hatice,Zeynep,Elif,Merve,Özlem,Esra,Gül,Derya,Sibel",
            "Yılmaz,Kaya,Demir,Şahin,Çelik,Yıldız,Yıldırım,Öztürk,Aydın,Özdemir,Arslan,Doğan,Kılıç,Aslan,Çetin,Kara,Koç,Kurt",
        ),
        _pool(
            "ar",
            "محمد=Mohammed/Muhammad/Mohamed,أحمد=Ahmed/Ahmad,علي=Ali,عمر=Omar/Umar,خالد=Khaled/Khalid,"
            "يوسف=Youssef/Yusuf/Yousef,حسن=Hassan/Hasan,إبراهيم=Ibrahim/Ebrahim,عبدالله=Abdullah/Abdallah,"
            "مصطفى=Mostafa/Mustafa,سعيد=Saeed/Said,طارق=Tariq/Tarek",
            "فاطمة=Fatima/Fatma,عائشة=Aisha/Aysha,مريم=Maryam/Mariam,نور=Nour/Noor,سارة=Sara/Sarah,ليلى=Layla/Leila,"
            "هدى=Huda/Hoda,زينب=Zainab/Zaynab,ريم=Reem/Rim",
            "الأحمد=Al-Ahmad/Alahmad,الحسن=Al-Hassan/Alhassan,المنصوري=Al Mansouri/Almansoori,الشمري=Al-Shammari/Alshammari,"
            "العتيبي=Al-Otaibi/Alotaibi,القحطاني=Al-Qahtani/Alqahtani,حداد=Haddad,خوري=Khoury/Khouri,نصر=Nasr,"
            "عبدالرحمن=Abdelrahman/Abdulrahman,سليمان=Suleiman/Soliman/Sulaiman,حسين=Hussein/Hussain/Husain,"
            "المصري=El-Masry/Al-Masri,عثمان=Othman/Osman,الزهراني=Al-Zahrani/Alzahrani,صالح=Saleh/Salih",
            latin_script=False,
            native_share=0.4,
        ),
        _pool(
            "ur",
            "محمد=Muhammad/Mohammad,علی=Ali,احمد=Ahmed/Ahmad,عمران=Imran,بلال=Bilal,عثمان=Usman/Osman,حمزہ=Hamza,فیصل=Faisal",
            "عائشہ=Ayesha/Aisha,فاطمہ=Fatima,سعدیہ=Sadia,ثنا=Sana,حنا=Hina,مریم=Maryam",
            "خان=Khan,ملک=Malik,چوہدری=Chaudhry/Chaudhary,قریشی=Qureshi/Quraishi,بٹ=Butt,شیخ=Sheikh/Shaikh,"
            "اعوان=Awan,حسین=Hussain/Hussein,رضا=Raza,اقبال=Iqbal",
            latin_script=False,
            native_share=0.15,
        ),
        _pool(
            "hi",
            "राहुल=Rahul,अमित=Amit,विजय=Vijay,संजय=Sanjay,राजेश=Rajesh,सुनील=Sunil,अनिल=Anil,रवि=Ravi,अर्जुन=Arjun,आदित्य=Aditya",
            "प्रिया=Priya,पूजा=Pooja/Puja,अंजलि=Anjali,नेहा=Neha,सुनीता=Sunita,कविता=Kavita,दीपिका=Deepika,आरती=Aarti/Arti",
            "शर्मा=Sharma,वर्मा=Verma,गुप्ता=Gupta,सिंह=Singh,कुमार=Kumar,पटेल=Patel,यादव=Yadav,जैन=Jain,"
            "अग्रवाल=Agarwal/Aggarwal,मिश्रा=Mishra,रेड्डी=Reddy,नायर=Nair,शाह=Shah,मेहता=Mehta,चौधरी=Chaudhary/Choudhary,जोशी=Joshi",
            latin_script=False,
            native_share=0.2,
        ),
        _pool(
            "zh",
            "伟=Wei,强=Qiang,磊=Lei,军=Jun,洋=Yang,勇=Yong,杰=Jie,涛=Tao,明=Ming,超=Chao,刚=Gang,建华=Jianhua,志强=Zhiqiang,晓明=Xiaoming",
            "芳=Fang,娜=Na,敏=Min,静=Jing,丽=Li,艳=Yan,娟=Juan,秀英=Xiuying,霞=Xia,平=Ping,海燕=Haiyan,玉兰=Yulan",
            "王=Wang/Wong,李=Li/Lee,张=Zhang/Chang/Cheung,刘=Liu/Lau,陈=Chen/Chan,杨=Yang/Yeung,黄=Huang/Wong,赵=Zhao/Chiu,"
            "吴=Wu/Ng,周=Zhou/Chow,徐=Xu/Hsu,孙=Sun,马=Ma,朱=Zhu/Chu,胡=Hu/Woo,郭=Guo/Kwok,何=He/Ho,林=Lin/Lam,罗=Luo/Law,高=Gao/Ko",
            latin_script=False,
            native_share=0.5,
            family_first=True,
            native_sep="",
        ),
        _pool(
            "ja",
            "翔=Sho/Shou,大輝=Daiki,健太=Kenta,拓也=Takuya,翔太=Shota/Shouta,陽斗=Haruto,蓮=Ren,悠真=Yuma/Yuuma,誠=Makoto,浩=Hiroshi",
            "陽菜=Hina,結衣=Yui,さくら=Sakura,美咲=Misaki,葵=Aoi,愛=Ai,優子=Yuko/Yuuko,恵子=Keiko,直美=Naomi,由美=Yumi",
            "佐藤=Sato/Satoh,鈴木=Suzuki,高橋=Takahashi,田中=Tanaka,伊藤=Ito/Itoh,渡辺=Watanabe,山本=Yamamoto,中村=Nakamura,"
            "小林=Kobayashi,加藤=Kato/Katoh,吉田=Yoshida,山田=Yamada,佐々木=Sasaki,山口=Yamaguchi,松本=Matsumoto,井上=Inoue",
            latin_script=False,
            native_share=0.5,
            family_first=True,
        ),
        _pool(
            "ko",
            "민준=Min-jun/Minjun,서준=Seo-jun/Seojun,도윤=Do-yun/Doyun,예준=Ye-jun,시우=Si-woo/Siu,하준=Ha-jun,지호=Ji-ho/Jiho,철수=Chul-soo/Cheol-su",
            "서연=Seo-yeon/Seoyeon,서윤=Seo-yun,지우=Ji-woo/Jiu,하은=Ha-eun,민서=Min-seo,지민=Ji-min/Jimin,수아=Su-a,영희=Young-hee/Yeong-hui",
            "김=Kim/Gim,이=Lee/Yi/Rhee,박=Park/Pak/Bak,최=Choi/Choe,정=Jung/Jeong/Chung,강=Kang,조=Cho/Jo,윤=Yoon/Yun,"
            "장=Jang/Chang,임=Lim/Im,한=Han,오=Oh,서=Seo/Suh,신=Shin/Sin,권=Kwon,황=Hwang",
            latin_script=False,
            native_share=0.5,
            family_first=True,
            native_sep="",
        ),
        _pool(
            "vi",
            "Anh,Minh,Hùng,Dũng,Tuấn,Hải,Long,Nam,Quang,Phúc",
            "Thảo,Linh,Hương,Lan,Mai,Trang,Ngọc,Phương,Hạnh,Yến",
            "Nguyễn,Trần,Lê,Phạm,Hoàng,Huỳnh,Phan,Vũ,Võ,Đặng,Bùi,Đỗ,Hồ,Ngô,Dương,Lý",
            family_first=True,
            middle_male="Văn,Đức,Minh,Quốc",
            middle_female="Thị,Ngọc,Thu",
        ),
        _pool(
            "id",
            "Budi,Agus,Ahmad,Andi,Eko,Wahyu,Hendra,Yusuf,Rizky,Arif,Joko,Hafiz",
            "Dewi,Siti,Sri,Rina,Putri,Fitri,Indah,Ayu,Nurul,Wulan,Aisyah,Mei Ling",
            "Santoso,Wijaya,Saputra,Kusuma,Pratama,Hidayat,Setiawan,Nugroho,Susanto,Halim,Gunawan,Lestari,Siregar,Rahman,Tan,Abdullah",
        ),
        _pool(
            "th",
            "สมชาย=Somchai,สมศักดิ์=Somsak,ประเสริฐ=Prasert,วิชัย=Wichai/Vichai,อนันต์=Anan,ธนากร=Thanakorn",
            "สมหญิง=Somying,สุดา=Suda,มาลี=Malee/Mali,นภา=Napa/Naphaa,วันเพ็ญ=Wanphen/Wanpen,ปราณี=Pranee",
            "สุขสวัสดิ์=Suksawat,ศรีสุข=Srisuk,แก้วมณี=Kaewmanee,ทองดี=Thongdee/Tongdee,บุญมา=Boonma/Bunma,"
            "จันทร์เพ็ญ=Chanphen,วงศ์สวัสดิ์=Wongsawat,รัตนกุล=Rattanakul,พรหมมา=Promma,ชัยวัฒน์=Chaiwat",
            latin_script=False,
            native_share=0.4,
        ),
        _pool(
            "af",
            "Chinedu,Emeka,Oluwaseun,Tunde,Ibrahim,Musa,Kwame,Kofi,Joseph,Samuel,Sipho,Brian",
            "Ngozi,Chiamaka,Funmilayo,Aisha,Amina,Grace,Blessing,Wanjiru,Akinyi,Thandiwe,Nomvula,Esther",
            "Okafor,Okonkwo,Adeyemi,Balogun,Eze,Nwosu,Abubakar,Bello,Mensah,Boateng,Owusu,Kamau,Otieno,Mwangi,Odhiambo,Nkosi,Dlamini,Ndlovu,Mokoena,Van der Merwe",
        ),
    )
}

# Naming tradition by nationality; other countries fall back on their region (REGION_POOL).
COUNTRY_POOL: dict[str, str] = {
    **dict.fromkeys("US GB CA AU NZ IE JM BS BB TT MT GI IM JE GG BM KY VG".split(), "en"),
    **dict.fromkeys("DE AT CH LI LU".split(), "de"),
    **dict.fromkeys("FR BE MC SN CI CM ML BF NE TG BJ GA CG CD MG HT".split(), "fr"),
    **dict.fromkeys("ES MX AR CO CL PE VE EC BO PY UY DO CR PA GT HN SV NI CU PR".split(), "es"),
    **dict.fromkeys("PT BR AO MZ CV".split(), "pt"),
    **dict.fromkeys("IT SM VA".split(), "it"),
    **dict.fromkeys("NL SR AW CW".split(), "nl"),
    "PL": "pl",
    **dict.fromkeys("SE NO DK FI IS".split(), "nordic"),
    **dict.fromkeys("RU BY KZ KG".split(), "ru"),
    "UA": "uk",
    **dict.fromkeys("GR CY".split(), "el"),
    **dict.fromkeys("TR AZ".split(), "tr"),
    **dict.fromkeys("AE SA QA KW BH OM YE IQ IR JO LB SY PS EG LY TN DZ MA SD".split(), "ar"),
    "PK": "ur",
    **dict.fromkeys("IN NP".split(), "hi"),
    **dict.fromkeys("CN HK MO TW SG".split(), "zh"),
    "JP": "ja",
    **dict.fromkeys("KR KP".split(), "ko"),
    "VN": "vi",
    **dict.fromkeys("ID MY BN PH".split(), "id"),
    "TH": "th",
    **dict.fromkeys("NG GH KE UG TZ ZA ZW ZM RW ET BW NA".split(), "af"),
}
REGION_POOL: dict[str, str] = {
    "europe": "ce",
    "north_america": "en",
    "latin_america": "es",
    "east_asia": "zh",
    "south_asia": "hi",
    "southeast_asia": "id",
    "middle_east": "ar",
    "africa": "af",
    "cis": "ru",
    "oceania": "en",
}
POOL_CODES: tuple[str, ...] = tuple(POOLS)

# --- businesses ------------------------------------------------------------------------------

BUSINESS_WORDS = (
    "Global,Prime,Nova,Apex,Blue,Golden,Silver,Eastern,Pacific,Atlas,Delta,Summit,Vertex,United,Star,Bright,"
    "Sun,Dragon,Phoenix,Lotus,Harbor,Orient,Royal,Smart,Green,Alpha,Omega,Zenith,Crown,Pioneer,Northern,Baltic,"
    "Silk Road,Meridian,Horizon,Falcon,Cedar,Oak,River,Coastal"
).split(",")
INDUSTRY_WORDS: dict[str, tuple[str, ...]] = {
    "retail": ("Retail", "Store", "Shop", "Market"),
    "wholesale": ("Wholesale", "Supply", "Distribution", "Trading"),
    "electronics": ("Electronics", "Tech", "Digital", "Devices"),
    "fashion": ("Fashion", "Apparel", "Textiles", "Style"),
    "chemicals": ("Chemicals", "Chem", "Laboratories", "Materials"),
    "pharmaceuticals": ("Pharma", "Life Sciences", "Medical", "Health"),
    "logistics": ("Logistics", "Freight", "Shipping", "Cargo"),
    "consulting": ("Consulting", "Advisory", "Partners", "Management"),
    "software": ("Software", "Systems", "Labs", "Solutions"),
    "import_export": ("Import Export", "Trading", "Commerce", "International"),
    "jewelry": ("Jewels", "Gold", "Gems", "Diamonds"),
    "automotive": ("Motors", "Auto Parts", "Automotive", "Car Parts"),
    "food": ("Foods", "Farms", "Provisions", "Kitchen"),
    "holding": ("Holdings", "Capital", "Investments", "Group"),
}
LEGAL_SUFFIX: dict[str, tuple[str, ...]] = {
    "US": ("LLC", "Inc.", "Corp."),
    "CA": ("Inc.", "Ltd."),
    "GB": ("Ltd", "Limited", "LLP"),
    "IE": ("Ltd", "Limited"),
    "DE": ("GmbH", "GmbH & Co. KG", "AG", "UG"),
    "AT": ("GmbH",),
    "CH": ("AG", "GmbH", "SA"),
    "FR": ("SARL", "SAS"),
    "BE": ("BV", "SRL"),
    "ES": ("S.L.", "S.A."),
    "IT": ("S.r.l.", "S.p.A."),
    "NL": ("B.V.",),
    "PL": ("sp. z o.o.",),
    "CN": ("Co., Ltd.",),
    "HK": ("Limited", "Co., Limited"),
    "JP": ("K.K.", "Co., Ltd."),
    "KR": ("Co., Ltd.",),
    "TW": ("Co., Ltd.",),
    "RU": ("LLC", "JSC"),
    "TR": ("Ltd. Şti.", "A.Ş."),
    "AE": ("FZE", "FZCO", "LLC"),
    "IN": ("Pvt. Ltd.",),
    "SG": ("Pte. Ltd.",),
    "AU": ("Pty Ltd",),
    "BR": ("Ltda.",),
    "MX": ("S.A. de C.V.",),
    "CY": ("Ltd",),
}
# Native-script legal names for a share of businesses in these countries (Chinese, Japanese,
# Russian company registers are in the native script).
NATIVE_BUSINESS: dict[str, tuple[tuple[str, ...], str]] = {
    "CN": (("深圳市", "广州", "上海", "义乌市", "东莞市"), "{city}{word}{industry}有限公司"),
    "JP": (("東京", "大阪", "名古屋"), "株式会社{city}{word}{industry}"),
    "RU": (("Москва", "Север", "Восток"), 'ООО "{city}{industry}"'),
}
NATIVE_WORDS = {
    "CN": ("华信", "恒通", "鑫源", "宏达", "创新", "金桥", "东方", "中联"),
    "JP": ("さくら", "日本", "東洋", "富士", "みらい"),
    "RU": ("", "", ""),
}
NATIVE_INDUSTRY = {
    "CN": {
        "electronics": "电子科技",
        "chemicals": "化工",
        "import_export": "进出口贸易",
        "holding": "控股",
        "_": "贸易",
    },
    "JP": {"electronics": "電子", "chemicals": "化学", "_": "商事"},
    "RU": {"electronics": "Электроника", "chemicals": "Химпром", "holding": "Холдинг", "_": "Торг"},
}

# --- addresses --------------------------------------------------------------------------------

STREETS: dict[str, tuple[str, ...]] = {
    "en": (
        "Main Street",
        "High Street",
        "Oak Avenue",
        "Park Road",
        "Church Lane",
        "Maple Drive",
        "Station Road",
        "King Street",
        "Elm Street",
        "Victoria Road",
    ),
    "de": (
        "Hauptstraße",
        "Bahnhofstraße",
        "Gartenstraße",
        "Schulstraße",
        "Dorfstraße",
        "Lindenweg",
        "Bergstraße",
        "Kirchgasse",
    ),
    "fr": (
        "rue de la Paix",
        "avenue Victor Hugo",
        "rue du Moulin",
        "boulevard Voltaire",
        "rue de l'Église",
        "place de la République",
    ),
    "es": (
        "Calle Mayor",
        "Avenida de la Constitución",
        "Calle Real",
        "Calle del Sol",
        "Paseo de Gracia",
        "Avenida Juárez",
    ),
    "pt": ("Rua das Flores", "Avenida Paulista", "Rua Augusta", "Rua da Liberdade", "Avenida Brasil"),
    "it": ("Via Roma", "Via Garibaldi", "Corso Italia", "Via Dante", "Via Verdi"),
    "nl": ("Dorpsstraat", "Kerkstraat", "Stationsweg", "Molenweg", "Schoolstraat"),
    "pl": ("ul. Długa", "ul. Polna", "ul. Leśna", "ul. Słoneczna", "ul. Kościuszki"),
    "nordic": ("Storgatan", "Kungsgatan", "Nørregade", "Mannerheimintie", "Drottninggatan"),
    "ce": ("Hlavní", "Fő utca", "Strada Mihai Eminescu", "Ulica Ilica", "Kneza Miloša"),
    "ru": ("ul. Lenina", "ul. Sovetskaya", "Nevsky prospekt", "ul. Gagarina", "ul. Mira", "Tverskaya ul."),
    "uk": ("vul. Khreshchatyk", "vul. Shevchenka", "vul. Franka", "prosp. Peremohy"),
    "el": ("Odos Ermou", "Leoforos Syngrou", "Odos Athinas", "Odos Egnatia"),
    "tr": ("Atatürk Caddesi", "İstiklal Caddesi", "Cumhuriyet Caddesi", "Bağdat Caddesi"),
    "ar": ("Sheikh Zayed Road", "Al Wasl Road", "King Fahd Road", "Tahrir Street", "Hamra Street"),
    "ur": ("Shahrah-e-Faisal", "Mall Road", "Jinnah Avenue", "MM Alam Road"),
    "hi": ("MG Road", "Linking Road", "Park Street", "Anna Salai", "Brigade Road"),
    "zh": (
        "Nanjing Road",
        "Renmin Road",
        "Zhongshan Road",
        "Jiefang Road",
        "Nathan Road",
        "Huaqiang North Road",
    ),
    "ja": ("Chuo-dori", "Meiji-dori", "Omotesando", "Midosuji"),
    "ko": ("Teheran-ro", "Sejong-daero", "Gangnam-daero", "Jongno"),
    "vi": ("Đường Lê Lợi", "Đường Nguyễn Huệ", "Phố Hàng Bài", "Đường Trần Hưng Đạo"),
    "id": ("Jalan Sudirman", "Jalan Thamrin", "Jalan Gatot Subroto", "Jalan Orchard"),
    "th": ("Sukhumvit Road", "Silom Road", "Rama IV Road", "Ratchadamri Road"),
    "af": ("Broad Street", "Allen Avenue", "Kenyatta Avenue", "Nelson Mandela Drive", "Oxford Road"),
}
CITIES: dict[str, tuple[str, ...]] = {
    "US": ("New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Seattle", "Miami", "Denver"),
    "GB": ("London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Bristol"),
    "DE": ("Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Leipzig"),
    "FR": ("Paris", "Lyon", "Marseille", "Toulouse", "Lille", "Bordeaux"),
    "IT": ("Roma", "Milano", "Napoli", "Torino", "Bologna"),
    "ES": ("Madrid", "Barcelona", "Valencia", "Sevilla", "Bilbao"),
    "NL": ("Amsterdam", "Rotterdam", "Utrecht", "Eindhoven"),
    "PL": ("Warszawa", "Kraków", "Wrocław", "Gdańsk", "Poznań"),
    "CA": ("Toronto", "Montréal", "Vancouver", "Calgary"),
    "MX": ("Ciudad de México", "Guadalajara", "Monterrey", "Puebla"),
    "BR": ("São Paulo", "Rio de Janeiro", "Belo Horizonte", "Curitiba", "Porto Alegre"),
    "CN": ("Shenzhen", "Guangzhou", "Shanghai", "Yiwu", "Dongguan", "Beijing", "Hangzhou"),
    "HK": ("Hong Kong", "Kowloon", "Tsuen Wan"),
    "JP": ("Tokyo", "Osaka", "Nagoya", "Yokohama", "Fukuoka"),
    "KR": ("Seoul", "Busan", "Incheon", "Daegu"),
    "IN": ("Mumbai", "Delhi", "Bengaluru", "Chennai", "Kolkata", "Hyderabad"),
    "TR": ("İstanbul", "Ankara", "İzmir", "Bursa"),
    "AE": ("Dubai", "Abu Dhabi", "Sharjah"),
    "SA": ("Riyadh", "Jeddah", "Dammam"),
    "RU": ("Moskva", "Sankt-Peterburg", "Novosibirsk", "Yekaterinburg", "Kazan"),
    "UA": ("Kyiv", "Lviv", "Odesa", "Kharkiv", "Dnipro"),
    "AU": ("Sydney", "Melbourne", "Brisbane", "Perth"),
    "NG": ("Lagos", "Abuja", "Port Harcourt", "Kano"),
    "VN": ("Hà Nội", "Thành phố Hồ Chí Minh", "Đà Nẵng"),
    "ID": ("Jakarta", "Surabaya", "Bandung", "Medan"),
    "TH": ("Bangkok", "Chiang Mai", "Phuket"),
    "SG": ("Singapore",),
    "PK": ("Karachi", "Lahore", "Islamabad"),
    "ZA": ("Johannesburg", "Cape Town", "Durban"),
    "KE": ("Nairobi", "Mombasa"),
    "EG": ("Cairo", "Alexandria", "Giza"),
    "KZ": ("Almaty", "Astana", "Shymkent"),
    "CY": ("Nicosia", "Limassol", "Larnaca"),
}
# Street-first address order ("Hauptstraße 12, Berlin") for these pools; the rest number-first.
STREET_FIRST_POOLS = frozenset(
    {"de", "es", "pt", "it", "nl", "pl", "nordic", "ce", "ru", "uk", "el", "tr", "vi", "id"}
)
